//! Shared glue for the example binaries of the MCPTT flow (one binary per actor in `src/bin/`).
