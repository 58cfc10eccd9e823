"""Bronze → staging: the sample-data generator, the streaming loader and the Parquet export.

Writes only the `staging` schema (and the lake's 01_bronze / 02_silver / 03_gold zones).
"""
