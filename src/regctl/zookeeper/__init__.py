"""ZooKeeper: the layout reader (reader), multiRead batches (multi), four-letter words (admin), watches (watch)."""
