//! The `kubectl` stand-in (see the crate's README).
fn main() {
    std::process::exit(kubeforge_standins::kubectl::main(
        std::env::args().collect(),
    ));
}
