//! Link root of the exitless image: everything lives in the library, whose `boot` module
//! provides `_start` (the arm64 Image header) and the panic handler.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
use exitless as _;

/// On the host this binary is only a reminder: the hypervisor is a bare-metal image.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("exitless is a bare-metal image: build it with `make` and boot it with `make run`");
    std::process::exit(2);
}
