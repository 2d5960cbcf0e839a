"""Reading what users drop in the watched folder: file identity, header mapping and streaming parse."""
