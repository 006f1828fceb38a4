//! Machine services that `boot` and `hv` both use, below both of them so that neither calls
//! the other for them: the hypervisor heap and the free physical memory guests come from
//! ([`heap`]), powering off ([`power`]) and the fatal-error policy ([`fatal`]).

pub mod fatal;
pub mod heap;
pub mod power;
