//! The `kubeadm` stand-in (see the crate's README).
fn main() {
    std::process::exit(kubeforge_standins::kubeadm::main(
        std::env::args().collect(),
    ));
}
