"""The pre-2018 baseline: static skip-gram embeddings feeding a BiLSTM classifier trained from scratch.

    embeddings = skipgram.train(documents, tokenizer, skipgram.default_config())   # (V, E) float32
    results = bilstm.train_and_evaluate(train_examples, test_examples, tokenizer, embeddings,
                                        bilstm.default_config())               # accuracy, macro_f1, ...

The skip-gram vocabulary is the pre-training tokenizer's, so the same ids index the embedding table of
the transformer and of this baseline. `pipeline.run(config, workdir)` does both steps on the
pre-training corpus and a labelled JSONL task (by default the `fortunes` topic task).
"""
