"""The living survey: ingest new papers, decide which are about attention heads, tag, summarise, publish.

Sources (arXiv, Hugging Face Daily Papers, Semantic Scholar) feed :mod:`.ingest`, which de-duplicates entries
into the store's ``feed_entries`` table; :mod:`.relevance` scores them, :mod:`.tagging` and :mod:`.summary`
annotate them, :mod:`.review` moves accepted ones into the catalogue, and :mod:`.atom` / :mod:`.digest`
publish them.
"""
