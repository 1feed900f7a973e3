//! Sandbox network namespaces for network tests (see DESIGN.md "Tests that touch the network").
