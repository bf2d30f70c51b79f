//! kubeforge's pure core: no SSH, no processes, no file system.
