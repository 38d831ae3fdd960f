"""Gin configs shipped with sbd_plugin (a package so gin can `include` them from anywhere)."""
