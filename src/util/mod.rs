//! Small pure helpers shared by the core and the shell: the kernel command line and the log
//! line format.

pub mod cmdline;
pub mod logfmt;
