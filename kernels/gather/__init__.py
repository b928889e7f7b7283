"""Row gather: the rows of one shuffled batch."""
