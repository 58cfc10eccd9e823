"""Shared plumbing for every part of the lakehouse: one way to reach the warehouse
(`lakehouse.warehouse`), one way to reach the lake (`lakehouse.lake`), and the local
PostgreSQL cluster the project starts when the user has none (`lakehouse.localdb`)."""
