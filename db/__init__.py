"""PostgreSQL: tables, engine and migrations.

Stock, money and the read model live here; where an order *is* lives in its
workflow. Every table is created by an Alembic migration, never at start-up.
"""
