"""The three losses of SCAN, one module each: ``contrastive`` (SimCLR, pretext),
``clustering`` (the SCAN loss) and ``confidence`` (self-labeling). Nothing is imported
here, so that each stage loads only the loss it trains with."""
