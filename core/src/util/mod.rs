//! Small pure helpers shared by the core and the shell: the kernel command line, the log
//! line format and the log ring, bounded UART transmit, and the multiplexing of VM consoles.

pub mod cmdline;
pub mod console_mux;
pub mod log_ring;
pub mod logfmt;
pub mod uart_tx;
