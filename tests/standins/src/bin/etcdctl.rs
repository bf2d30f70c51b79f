//! The `etcdctl` stand-in of the etcd image (see the crate's README).
fn main() {
    std::process::exit(kubeforge_standins::etcdctl::main(
        std::env::args().collect(),
    ));
}
