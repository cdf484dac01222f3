//! Links the binary again when its code layout changes: scripts/link-hot-first (the
//! workspace's linker on x86_64 Linux) reads hot-functions.txt at link time.
fn main() {
    println!("cargo:rerun-if-changed=hot-functions.txt");
    println!("cargo:rerun-if-changed=../../scripts/link-hot-first");
}
