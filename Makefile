# The two commands a newcomer needs:
#   make run    install into .venv, then a short LeNet-5 run on MNIST (ARGS="--epochs 3 --seed 1":
#               the README's first LeNet command, which then finds this run finished;
#               ARGS=--restart for the book's 100 epochs from the start)
#   make test   install into .venv, then run the whole test suite
# and, for maintainers:
#   make acceptance   real-data checks against ../shared/data (SHARED_DATA=... elsewhere)
#   make test-floor   the test suite against the oldest versions allowed (requirements-floor.txt)
#   make bench        benchmarks (bench/README.md)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLOOR_VENV ?= .venv-floor
FLOOR_BIN := $(FLOOR_VENV)/bin
SHARED_DATA ?= $(abspath ../shared/data)
ARGS ?= --epochs 3 --seed 1

.PHONY: install run test test-floor acceptance bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(FLOOR_VENV)/.installed: requirements.txt requirements-dev.txt requirements-floor.txt
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements-floor.txt -r requirements-dev.txt
	touch $@

run: install
	@echo "make run: python lenet_mnist.py $(ARGS)  (the book's 100 epochs, from the start: make run ARGS=--restart)"
	$(BIN)/python lenet_mnist.py $(ARGS)
	@echo "make run: done; to type the README's commands, first: . $(VENV)/bin/activate"

test: install
	$(BIN)/python -m pytest -q --durations=15 tests

test-floor: $(FLOOR_VENV)/.installed
	$(FLOOR_BIN)/python -c "import tensorflow as tf, numpy; print('floor: TensorFlow', tf.__version__, 'NumPy', numpy.__version__)"
	$(FLOOR_BIN)/python -m pytest -q --durations=15 -p no:cacheprovider -m "not reader" tests

acceptance: install
	SHARED_DATA=$(SHARED_DATA) $(BIN)/python -m pytest -q --durations=15 acceptance

bench: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/lenet_vs_keras.py --data-dir $(SHARED_DATA)/mnist
	$(BIN)/python bench/emotion_data_and_training.py --fer2013 $(SHARED_DATA)/fer2013/fer2013.csv.gz
	$(BIN)/python bench/emotion_fer2013.py --fer2013 $(SHARED_DATA)/fer2013/fer2013.csv.gz \
		--keep logs/bench_fer2013 -- --model vgg --augment --schedule cosine --iterations 11000 --seed 1
	$(BIN)/python bench/tilted_faces.py --fer2013 $(SHARED_DATA)/fer2013/fer2013.csv.gz \
		--logs-dir logs/bench_fer2013
	$(BIN)/python bench/inception_classify.py --image $(SHARED_DATA)/images/inception_example.jpg
	$(BIN)/python bench/alexnet_forward_and_prep.py --photos $(SHARED_DATA)/dogs_vs_cats/train
	$(BIN)/python bench/emotion_live.py --images $(SHARED_DATA)/images
	$(BIN)/python bench/face_detector.py --data $(SHARED_DATA)
	$(BIN)/python bench/style_transfer_vs_torch.py --content $(SHARED_DATA)/images/cat.jpg --style $(SHARED_DATA)/images/mosaic.jpg
	$(BIN)/python bench/style_transfer_fast.py --content $(SHARED_DATA)/images/cat.jpg --style $(SHARED_DATA)/images/mosaic.jpg

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .pytest_cache
