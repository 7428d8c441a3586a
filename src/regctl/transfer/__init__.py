"""Export and import: the file (file), the live state it is compared with (live), restore plans (restore)."""
