//! The domain's rules through its public API: orders entered, walked through each bundled workflow, refused
//! with typed errors, followed up, and judged for health; and who may see what. One test binary with a
//! module per concern, sharing the small world of `support`.

mod access;
mod change_orders;
mod follow_ups;
mod guards;
mod issues;
mod milestones;
mod new_orders;
mod payments;
mod progress;
mod role_matrix;
mod support;
mod walks;
