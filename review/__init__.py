"""Human review: reviewers judge stratified samples of preference pairs, and their verdicts
calibrate the signals (docs/review.md).

The interface for the CLI, the API and the console is ``review.service`` (functions taking the
settings); below it, ``review.queues`` and ``review.calibration`` work on an open warehouse
connection, and ``review.sampling``, ``review.stats`` and ``review.rubric`` do no I/O but read
files.
"""
