//! Small pure helpers shared by the core and the shell: the kernel command line, the log
//! line format and the log ring, bounded UART transmit, the multiplexing of VM consoles and their
//! per-VM output rings, fixed-size counter tables, the lock type and its wait hint.

pub mod cmdline;
pub mod console_mux;
pub mod console_out;
pub mod counters;
pub mod lock;
pub mod log_ring;
pub mod logfmt;
pub mod uart_tx;
