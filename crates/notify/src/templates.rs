//! TODO: templates
