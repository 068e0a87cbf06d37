"""Where runs live: the Tiled catalog (SQLite embedded or PostgreSQL), the background catalog
writer, the document journal and crash recovery, replay, export, importers of other programs'
files, and finding runs. It hears documents; it imports nothing of acquisition, plans or the GUI."""
