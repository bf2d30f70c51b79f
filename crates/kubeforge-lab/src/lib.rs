//! `kubeforge lab`: throwaway Debian hosts on one Linux machine.

pub mod cli;
