//! Small pure helpers shared by the core and the shell: the kernel command line, the log
//! line format, and the multiplexing of VM consoles.

pub mod cmdline;
pub mod console_mux;
pub mod logfmt;
