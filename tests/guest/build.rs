//! Links the guest at 0x40080000 with `link.ld` (the raw-binary load address of QEMU virt and of
//! exitless: guest RAM base + 0x80000).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    println!("cargo:rerun-if-changed=link.ld");
}
