"""One package per external API: its client, its field mapping and its sandbox."""
