//! Builds the C shim over Berkeley DB 5.3 (`src/libdb/shim.c`) and links libdb-5.3, when the `libdb`
//! feature is on (the default). It needs Debian's `libdb5.3-dev` for the target (`ci/test.sh` installs it);
//! build with `--no-default-features` where it is absent (e.g. a cross-build without the armel package).

fn main() {
    println!("cargo:rerun-if-changed=src/libdb/shim.c");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_LIBDB").is_none() {
        return;
    }
    let mut build = cc::Build::new();
    build.file("src/libdb/shim.c").warnings(true).extra_warnings(true);
    if let Err(e) = build.try_compile("dbtorture_libdb_shim") {
        panic!(
            "the `libdb` feature needs Berkeley DB 5.3's headers (Debian: apt-get install libdb5.3-dev), \
             or build with --no-default-features: {e}"
        );
    }
    println!("cargo:rustc-link-lib=db-5.3");
}
