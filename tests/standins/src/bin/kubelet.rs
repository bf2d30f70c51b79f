//! The `kubelet` stand-in (see the crate's README).
fn main() {
    std::process::exit(kubeforge_standins::kubelet::main(
        std::env::args().collect(),
    ));
}
