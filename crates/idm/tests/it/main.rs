//! Integration tests of `mcptt-idm`: the IdMS core driven like the HTTP server drives it.

mod flow;
