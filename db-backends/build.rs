//! Builds the C shim over Berkeley DB 5.3 (`src/libdb/shim.c`) and links libdb-5.3, when the `libdb`
//! feature is on (the default), and sets `cfg(libdb_shim)`, which gates the backend's code.
//!
//! It needs Debian's `libdb5.3-dev` for the target (`ci/deps.sh` installs it). A native build without it
//! fails with that hint (or build with `--no-default-features`); a cross build without the target's headers
//! (e.g. armv5te without the armel package) warns and goes on without the libdb backend, which then reports
//! that it was not built in.

fn main() {
    println!("cargo:rerun-if-changed=src/libdb/shim.c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(libdb_shim)");
    if std::env::var_os("CARGO_FEATURE_LIBDB").is_none() {
        return;
    }
    let mut build = cc::Build::new();
    build.file("src/libdb/shim.c").warnings(true).extra_warnings(true);
    match build.try_compile("dbtorture_libdb_shim") {
        Ok(()) => {
            println!("cargo:rustc-link-lib=db-5.3");
            println!("cargo:rustc-cfg=libdb_shim");
        }
        Err(e) if std::env::var("TARGET").ok() != std::env::var("HOST").ok() => {
            println!(
                "cargo:warning=building without the libdb backend: no Berkeley DB 5.3 headers for this target ({e})"
            );
        }
        Err(e) => panic!(
            "the `libdb` feature needs Berkeley DB 5.3's headers (Debian: apt-get install libdb5.3-dev), \
             or build with --no-default-features: {e}"
        ),
    }
}
