//! TODO: timeline
