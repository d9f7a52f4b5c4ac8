"""The test rig that ships with syncd: the shared sandbox core, the fault proxy, the
sandbox runner (`syncd sandbox`), the throwaway stack behind `syncd demo` and the benchmarks,
and the residue scan. Product code (the relay, the daemon, the journal, the control API and
the connector clients) never imports it; ``tests/unit/test_boundaries.py`` says so."""
