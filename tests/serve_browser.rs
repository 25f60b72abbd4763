//! Browser tests of the GUI (being written).
