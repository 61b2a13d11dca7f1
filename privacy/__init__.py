"""Privacy, in one place: pseudonym keys, the suppression list, the detectors of personal data
and secrets (which the ingest anonymiser and the export gate both use) and the erasure request
log. It imports only the base layer (``flywheel.settings``, ``errors``, ``files``...); every stage
may import it."""
