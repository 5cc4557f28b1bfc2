"""Frame embeddings: open_clip encoder, on-disk vector store with a FAISS index, pool embedding."""
