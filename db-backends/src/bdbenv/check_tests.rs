//! Unit tests of the offline check (`check.rs`) that reach its private helpers.

use super::*;
use crate::{BackendKind, OpenMode, Reader};

#[test]
fn a_cache_frame_naming_a_page_far_past_its_file_is_a_finding_not_a_4gib_allocation() {
    let d = tempfile::tempdir().unwrap();
    let db = super::super::BdbEnv::open(d.path(), OpenMode::Create, BackendKind::Bdbenv, Profile::Db46).unwrap();
    Box::new(db).close().unwrap();
    let path = d.path().join(super::super::MPOOL_FILE);
    let mut m = std::fs::read(&path).unwrap();
    let n = u32_at(&m, mpool::M_NFRAMES) as usize;
    assert!(n > 0);
    for i in 0..n {
        let at = mpool::M_FRAMES + i * mpool::FRAME_HDR;
        super::super::shqueue::set_u32(&mut m, at, 0);
        super::super::shqueue::set_u32(&mut m, at + 4, 0xF_FFFF - i as u32);
        super::super::shqueue::set_u32(&mut m, at + 8, mpool::VALID);
    }
    std::fs::write(&path, &m).unwrap();
    let (findings, _) = offline(d.path(), Profile::Db46).unwrap();
    let past = findings.iter().filter(|f| f.to_string().contains("past its end")).count();
    assert_eq!(past, n, "every frame is named: {findings:?}");
}
