"""Non-code files shipped with MemDesk: prompt templates, grammars (icons and .ui files later)."""
