"""Address and locality search: what people type, read into terms the repository matches."""
