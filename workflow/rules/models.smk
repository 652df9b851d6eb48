# Stage 0: a model source (embedded GGUF, GGUF file, Hugging Face folder) -> prepared folder.
# A checkpoint: the number of layers, known once the model is prepared, decides the probe cells.


checkpoint prepare_model:
    output:
        directory("resources/models/{model}"),
    params:
        code=library_code("prepare_model.py"),
        model=get_model_preparation,
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/prepare_model.py"
