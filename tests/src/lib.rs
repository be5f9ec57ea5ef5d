//! Shared code of the integration suite and the load-test tool.
