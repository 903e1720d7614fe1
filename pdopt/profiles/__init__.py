"""Instance profiles: turn benchmark results and estimates into scenario instance blocks."""
