"""The hub: an index of registries' packages kept in the store, search over it, and a static
web catalog built from it (and served, kept fresh by registry notifications).

    index.py   the index's model and its file in the store ($EBPM_HOME/ebpm/hub/)
    crawl.py   refreshing the index from registries (catalog, tags, new digests only)
    search.py  ranked search over the index
    readme.py  README Markdown to sanitised HTML
    site.py    the static site (explore page, package pages, assets)
    server.py  `ebpm hub serve`: preview, and registry notifications that rebuild pages
"""
