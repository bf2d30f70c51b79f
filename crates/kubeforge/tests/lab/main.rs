//! End-to-end scenarios against one shared lab (see kubeforge-lab).

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    libtest_mimic::run(&args, Vec::new()).exit();
}
