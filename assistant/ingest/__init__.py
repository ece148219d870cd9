"""Reading: find the files of a corpus, parse each by its format, and cut them into chunks.

``documents`` holds the plain types every later stage uses; ``files`` walks a corpus folder;
``readers`` picks the parser for a file (one module per format); ``chunking`` fits sections
to the model's window; ``beir`` reads public benchmark corpora as documents.
"""
