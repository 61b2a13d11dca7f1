"""Dev tools: the local Kafka broker and the traffic simulator, for the demo, tests and benchmarks.

They import the base layer and nothing else of ours. The simulator stands in for a frontend, so
it writes events from its own model rather than from the event contract's classes: the tests that
check its events against ``ingest.contract`` then test the contract as a client meets it. No stage
imports a dev tool; the shell (the demo, ``flywheel simulate``, ``flywheel kafka``), tests and
benchmarks do."""
