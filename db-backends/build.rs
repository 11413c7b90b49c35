//! Builds the C shim over Berkeley DB 5.3 (`src/libdb/shim.c`) and links libdb-5.3, when the `libdb`
//! feature is on (the default), and sets `cfg(libdb_shim)`, which gates the backend's code.
//!
//! It needs Debian's `libdb5.3-dev` for the target (`ci/deps.sh` installs it). Without it the build warns
//! and goes on without the libdb backend, which then says it was not built in and how to get it: the main
//! job (`cargo run --release -- run scenarios/smoke.toml`) must work on a fresh machine. `ci/deps.sh` runs
//! before every CI build, and under CI the libdb tests fail instead of skipping.

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
        Err(e) => {
            println!(
                "cargo:warning=building without the libdb backend: no Berkeley DB 5.3 headers for this target \
                 (Debian: apt-get install libdb5.3-dev, or ci/deps.sh): {e}"
            );
        }
    }
}
