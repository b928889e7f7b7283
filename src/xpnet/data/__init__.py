"""Raw data files and downloads: readers of MNIST's IDX files, CSV tables, image folders and single images, the
MNIST download, chunked reading and spills to disk, and toy data sets. Nothing here knows about models or the
command line.

Not to be confused with ``xpnet.tasks``, the jobs of ``xpnet train`` (``tasks/fruits.py`` is the fruits job, built
on ``data/fruits.py``, the reader of Fruits-360-style image folders that every image job uses).
"""
