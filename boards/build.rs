//! Links a board image with the linker script every board shares,
//! `boards/link.ld`. Each board's Cargo.toml names this file
//! (`build = "../build.rs"`): the image is position independent, so no
//! board needs a link address, or a script, of its own.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = std::path::Path::new(&dir).join("..").join("link.ld");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    // A position-independent image with its relocations already applied
    // for the link address (see link.ld and core's arch/entry.rs). `-z
    // notext`: the precompiled `core` and `alloc` keep tables of pointers
    // in `.rodata`, whose relocations the entry code applies like any
    // other (the MMU is off, so nothing is read-only yet); code itself
    // never holds an absolute address (the small code model is
    // PC-relative, and the entry code uses adrp/add).
    for arg in [
        "--pie",
        "--no-dynamic-linker",
        "--apply-dynamic-relocs",
        "-z",
        "notext",
        "-z",
        "pack-relative-relocs",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed={}", script.display());
}
