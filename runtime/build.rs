//! Link flags of the `minirun` binary.

fn main() {
    // A position-independent executable, as Debian builds every binary, with
    // its 38,000 relative relocations packed (DT_RELR, glibc 2.36 and later)
    // instead of a 929 kB table the dynamic loader reads at every exec:
    // minirun is executed twice per container start (the CVE-2019-5736
    // guard re-executes it).
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
