"""Discovery: index images (pins, catalogues), search them by image, text or board, and shop the look.

See ``docs/discovery.md``. :mod:`.index` is the index folder (item table + engine), :mod:`.engines` the two
index engines behind one protocol (embedded faiss; Milvus), :mod:`.search` the queries and the multi-mode
merge, :mod:`.sources` what can be indexed (board folders, ``products.csv``).
"""

from .engines import EmbeddedEngine, IndexEngine, MilvusEngine
from .index import AddReport, IndexSettings, Item, SearchIndex, create_or_open, open_index
from .search import (
    Hit,
    ModeQuery,
    Reason,
    centroid_query,
    mode_queries,
    search_board,
    search_image,
    search_modes,
    search_text,
    shop_the_look,
)
from .sources import SourceImage, board_images, read_catalogue, read_sources

__all__ = [
    "AddReport",
    "EmbeddedEngine",
    "Hit",
    "IndexEngine",
    "IndexSettings",
    "Item",
    "MilvusEngine",
    "ModeQuery",
    "Reason",
    "SearchIndex",
    "SourceImage",
    "board_images",
    "centroid_query",
    "create_or_open",
    "mode_queries",
    "open_index",
    "read_catalogue",
    "read_sources",
    "search_board",
    "search_image",
    "search_modes",
    "search_text",
    "shop_the_look",
]
