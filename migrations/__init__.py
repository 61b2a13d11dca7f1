"""The warehouse's alembic migrations, installed with the package (``warehouse.db`` finds them
through ``importlib.resources``; ``alembic.ini`` at the project root points the alembic command
here when developing)."""
