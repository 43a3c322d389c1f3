"""Postgres access with asyncpg: one module per aggregate, SQL as named constants."""
