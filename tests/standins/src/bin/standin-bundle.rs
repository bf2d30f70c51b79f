//! `standin-bundle OUT_DIR`: an offline bundle of the stand-ins (see the crate's README).
fn main() {
    std::process::exit(kubeforge_standins::bundle::main(std::env::args().collect()));
}
